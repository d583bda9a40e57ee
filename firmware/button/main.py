# Tabletop button role: copied to the device as /main.py.
import button_app
import runner

runner.run("button", button_app.make_app)
