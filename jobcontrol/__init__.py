"""jobcontrol: the generated contract (`jobcontrol.v1`), the server (`jobcontrol.service`)
and the REST gateway (`jobcontrol.gateway`) as one import package."""
