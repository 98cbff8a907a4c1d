"""The ``smpc`` command line (commands in :mod:`parties.cli.main`).

Loading this package sets the thread limits of :mod:`parties.threads` before
numpy and numba load, so every ``smpc`` process runs single-threaded kernels.
"""

from parties.threads import limit_threads

limit_threads()
