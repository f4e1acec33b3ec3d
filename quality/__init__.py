"""The quality stage: raw and mart gates (Great Expectations), drift, quarantine, monitoring."""
