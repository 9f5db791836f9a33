"""The field's methods that start from a generic model trained on training raters before
personalization (PA-IAA, AesMamba-P's prompts, the multi-attribute heads), and the data they share."""
