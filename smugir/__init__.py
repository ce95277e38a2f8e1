"""smugir."""
