"""Email to customers over SMTP (aiosmtplib): the payment link, the receipt, reminders."""
