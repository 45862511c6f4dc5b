"""Channels behind one worker: SMS, voice, email (see ``worker.py``)."""
