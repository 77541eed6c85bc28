"""The live terminal view: window statistics, keys, view state and drawing (see l7scope.summary)."""
