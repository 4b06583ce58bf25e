"""The skeleton's own pages: the home page (``public.index``)."""
