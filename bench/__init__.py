"""`mammo-batch bench`: mammo-batch against the seed's own pipeline, side by side (the `train` extra).

    seed_style.py  the seed-style pipeline (pydicom, PNG round trip, eager fp32 torch, batch 1)
    members.py     a temporary bundle of random-weight members (`--arch`), exported by build/
    compare.py     both sides on the same studies and members -> a JSON result and a table
    cli.py         the command
"""

from mammo_batch.engine.runtimes.torch_cpu import sleep_idle_openmp_threads

# Before anything here imports torch: both sides run torch on cores the decode workers share.
sleep_idle_openmp_threads()
