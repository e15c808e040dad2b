"""The runtime: discovery, DICOM decode, preprocessing, scheduling, runtimes, aggregation, CLI.

Imports point one way: build -> train -> engine. Nothing here imports train or build,
and nothing here needs torch to run on the CPU.
"""
