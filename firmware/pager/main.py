# Wrist pager role: copied to the device as /main.py.
import pager_app
import runner

runner.run("pager", pager_app.make_app)
