"""Evaluation: accuracy and probe sets (``accuracy``), membership inference and PrivLeak (``mia``),
memory exposure (``exposure``), the parameter-side comparison (``unlearning``), backflow round by round
(``backflow``), many requests (``requests``), the replication study with its main table and claims (``study``),
the leak scanner and redaction (``leaks``), the calibration stop (``calibration``), the base model's targets
(``targets``), confidence intervals and sweep summaries (``stats``), and the figures (``plots``)."""
