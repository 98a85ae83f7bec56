"""Web views: health checks, the SMART launch endpoints, and the pages a clinician sees."""
