"""lightseg.export"""
