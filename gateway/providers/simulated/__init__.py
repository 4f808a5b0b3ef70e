"""What the provider simulators share: the simulated handsets (what each phone received and
texted) and the poster of their delayed webhooks."""
