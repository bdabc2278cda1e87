"""Classification: proxy training of a backbone on a classes-folder dataset."""
