"""The local web viewer (`l2h view`): the run's COGs as map tiles (rio-tiler) on a Leaflet page."""
