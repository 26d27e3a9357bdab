"""Process entry points: the Kafka worker, the webhook app and their shared wiring."""
