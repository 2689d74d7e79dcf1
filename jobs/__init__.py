"""crm-metrics: transactions in, customer relationship metrics out."""

import logging

# Great Expectations logs hundreds of INFO lines on import once structlog is configured.
logging.getLogger("great_expectations").setLevel(logging.WARNING)
