"""Kafka adapters: reading verification requests from the topic and committing progress."""
