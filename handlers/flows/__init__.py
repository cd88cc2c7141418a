"""Conversation flows: one per capability, each plain code over a ConversationState."""
