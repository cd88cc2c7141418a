"""The message pipeline and the conversation flows."""
