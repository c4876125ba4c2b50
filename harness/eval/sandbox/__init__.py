"""The sandbox: untrusted generated code runs here, and only here, with a trusted checker outside it."""
