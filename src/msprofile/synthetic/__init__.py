"""Synthetic data the workflow makes itself: FLAIR phantoms with exact masks (:mod:`.phantom`),
the demo cohort built from them (:mod:`.demo_cohort`) and placeholder cohorts for planning at
cluster scale (:mod:`.placeholder_cohort`)."""
