"""SMS through Twilio's Messages API (the `[whatsapp]` account), for customers given a phone number."""
