"""Printer webhooks: the inbox (store, then think), its processing, its doorbell and backfills.

``inbox.webhook_receive`` is all the views do; ``processing.webhooks_process``
is all the task, the command and the backfills do.  See docs/webhooks.md.
"""
