"""A paho-mqtt client over WebSocket, as a dashboard would use the bus.

Prints the CONNACK's code as {"connack": N} (and exits when it is a refusal);
subscribes to --subscribe, prints "subscribed" once the SUBACK is in, publishes
--message to --publish (QoS 1) if given, then prints each message it receives as a
JSON line and exits after --count of them (or fails after 60 s).
"""
import argparse
import json
import sys
import threading

import paho.mqtt.client as mqtt

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--version", choices=["3.1.1", "5"], required=True)
parser.add_argument("--subscribe", default="")
parser.add_argument("--publish")
parser.add_argument("--message", default="")
parser.add_argument("--count", type=int, default=1)
parser.add_argument("--cafile")
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--username")
parser.add_argument("--password")
parser.add_argument("--connect-only", action="store_true", help="exit after the CONNACK")
args = parser.parse_args()

protocol = mqtt.MQTTv5 if args.version == "5" else mqtt.MQTTv311
client = mqtt.Client(client_id=f"paho-ws-{args.version}", protocol=protocol, transport="websockets")
if args.cafile:
    client.tls_set(ca_certs=args.cafile, certfile=args.cert, keyfile=args.key)
if args.username:
    client.username_pw_set(args.username, args.password)
done = threading.Event()
received = []


def say(line):
    print(line, flush=True)


def on_connect(client, userdata, flags, rc, properties=None):
    code = int(rc.value) if hasattr(rc, "value") else int(rc)
    say(json.dumps({"connack": code}))
    if code != 0 or args.connect_only:
        # Refused, or only the CONNACK was asked for: what the broker answered is the result.
        done.set()
        return
    client.subscribe(args.subscribe, qos=1)


def on_subscribe(client, userdata, mid, granted, properties=None):
    say("subscribed")
    if args.publish:
        client.publish(args.publish, args.message, qos=1)


def on_message(client, userdata, message):
    received.append(message)
    say(json.dumps({"topic": message.topic, "payload": message.payload.decode("utf-8", "replace")}))
    if len(received) >= args.count:
        done.set()


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect("127.0.0.1", args.port, keepalive=30)
client.loop_start()
ok = done.wait(60)
client.disconnect()
client.loop_stop()
sys.exit(0 if ok else 1)
