"""Reports: build the data from the store, then render it (HTML, JSON; PDF/XLSX later)."""
