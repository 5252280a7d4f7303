"""CTC decoding of a stream's logits: greedy, and beam search with a word LM and hotwords."""
