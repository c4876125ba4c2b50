"""mtp-harness: a reproducibility benchmark harness for multi-token prediction (MTP).

Importing the package must stay cheap and side-effect free (house rule 10): heavy
libraries load inside the command that needs them.
"""

__version__ = "0.1.0"
