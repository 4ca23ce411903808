"""The mailing stage: Proofed → SendingStaged / Scheduled → Sending → Sent, exactly once."""
