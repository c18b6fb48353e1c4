"""Simulated agency traffic with its ground truth: inspections, dossiers, office hours, refusals
(``parwatch simulate``, the demo, the tests and the bench)."""
