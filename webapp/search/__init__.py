"""Query by photo: the search page and the JSON search API."""
