"""Notifications through a transactional outbox, delivered as signed webhooks (contract §14).

outbox.py writes and reads the `notifications` table (a row commits with the event that causes
it); signing.py signs a body per the Standard Webhooks spec; worker.py claims due rows and posts
them, with retries, from every replica; triggers.py decides which views notify a customer.
"""
