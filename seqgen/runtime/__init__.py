"""Modules seqgen copies into generated files: the trace runs these very classes."""
