"""Red Button gateway: routes presses to pagers, escalates, and keeps the service-recovery record."""
