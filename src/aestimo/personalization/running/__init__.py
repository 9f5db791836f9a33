"""The machinery that runs methods: plan person × k × repeat jobs (``runs``), choose settings on
validation people (``selection``), run the jobs in worker processes (``pool``), and name what is
saved (``keys``). No method lives here, and no method imports it."""
