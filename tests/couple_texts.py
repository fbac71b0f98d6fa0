"""Couple file texts that several test modules start from."""

VALID = """\
timezone: Europe/Berlin
partners:
  - name: Alex
    phone: "+4915112340001"
  - name: Sam
    phone: "+4915112340002"
rituals:
  - kind: check_in
    schedule: every day at 21:00
"""
