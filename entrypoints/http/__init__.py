"""The HTTP app: Twilio status callbacks, the verification API for other services, health."""
