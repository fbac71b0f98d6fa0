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

# A couple file that fails to load with a phone number and words where they do not belong:
# what a log must never quote (`hearth validate` may, to the person).
LEAKY = """\
couple: leaky
timezone: Europe/London
partners:
  - {name: Ann, phone: "+44 7700 900123"}
  - {name: Bo, phone: "+447700900456"}
rituals:
  - kind: check_in
    schedule: "miss you so much, call me tonight"
"""
