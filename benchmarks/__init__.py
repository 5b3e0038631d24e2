"""lightseg.benchmarks"""
