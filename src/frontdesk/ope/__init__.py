"""Off-policy evaluation: what a target policy would have done, per segment, from logged decisions."""
