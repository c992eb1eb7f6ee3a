"""nn.Module classes that seqgen copies verbatim into generated model files."""
