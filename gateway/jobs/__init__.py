"""Reminder jobs: bulk notices from a template to many recipients."""
