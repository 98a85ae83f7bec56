"""The clinician's workflow around one launch: the chart picture, proposals, checks, notes."""
