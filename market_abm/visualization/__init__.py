"""The Solara visualizer: a page that watches a principal steer learning agents on a network
(`app`, served by `market-abm viz`), the model it drives (`market_view`), its network drawing
(`network_view`), and the front-end assets it loads, fetched for offline use (`assets`)."""

APP = "market_abm.visualization.app"  # the page's module, as `solara run` takes it
