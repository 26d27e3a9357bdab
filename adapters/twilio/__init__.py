"""Twilio Messaging API adapters: the WhatsApp sender and the callback signature check."""
