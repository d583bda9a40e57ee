# Base station role (ESP-NOW <-> USB serial to the gateway's bridge): copied to the device as /main.py.
import base_board

base_board.run()
