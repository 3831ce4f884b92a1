"""Benchmark (issue 4): costs that grow with missing images, not with table size.

Compares the product, called through its real entry points, with a naive baseline in the same run on
moto in-process: items read, read units and AWS requests for listing a small, a typical, a
mid-size and a large partition (also against one Query of the partition), a sweep and queueing 1,000 records;
handler cold-start import time against `import boto3`; local-renderer throughput.

    make bench                        # 100,000 records, 1,000 users, 1 % missing, 5 repeats
    make bench BENCH_ARGS=--quick     # 10,000 records: a smoke run

See `python -m bench.run --help` for the options.
"""
