"""lightseg.runtimes"""
