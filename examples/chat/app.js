// The chat page. Uses window.WebSocketConnector (clients/js, loaded by a
// <script> tag before this file). Everything shown comes from the network
// and is written with textContent only, never as HTML.
//
// Page URL options (for trying things out, and for the browser test):
// ?ping=MS heartbeat interval (default 3000), ?retry=MS fast reconnect delay
// (default 1000), ?retryMax=MS longest reconnect delay (default 10000),
// ?health=MS how often the node's /health is read (default 5000).
//
// Missed-message recovery is on: after a reconnection the node sends the
// room's messages this page missed (when the node keeps a history); they are
// shown marked "recovered". When they cannot be recovered (the node lost its
// history, or the page was away too long), a notice asks to reload.
//
// Presence is on too: the node sends the members of the room when the page
// joins it and every join and leave after (on any node of the cluster, and
// when a node goes away); the online list shows them.
(function () {
  'use strict';

  var MAX_TEXT = 2000;
  var MAX_SHOWN = 500;

  var $ = function (id) {
    return document.getElementById(id);
  };
  var query = new URLSearchParams(location.search);
  function option(key, fallback) {
    var v = Number(query.get(key));
    return Number.isInteger(v) && v > 0 ? v : fallback;
  }

  var connector = new WebSocketConnector({
    url: (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws',
    pingInterval: option('ping', 3000),
    fastReconnectInterval: option('retry', 1000),
    fastReconnectThreshold: 3,
    reconnectMaxInterval: option('retryMax', 10000),
    recovery: true,
    presence: true,
  });
  window.chat = { connector: connector };

  // The room we are in ({name, room}); kept across reconnections so that the
  // page joins again by itself.
  var joined = null;

  // ----- status ---------------------------------------------------------------

  function setStatus(state, text) {
    var el = $('status');
    el.className = 'status ' + state;
    el.dataset.state = state;
    el.textContent = text;
  }

  function showError(id, text) {
    var el = $(id);
    el.textContent = text || '';
    el.hidden = !text;
  }

  connector.on('open', function () {
    setStatus('connected', 'connected');
    $('room-panel').classList.remove('offline');
    if (joined) {
      join(joined.name, joined.room, true);
    }
  });

  connector.on('welcome', function (info) {
    if (!info) return;
    $('node').textContent = String(info.node);
    $('nodes').textContent = String(info.nodes);
  });

  // Why a connection closed, in words (WebSocket and crosswire close codes).
  var CLOSE_WORDS = {
    1000: 'closed by the server',
    1001: 'the server went away: restarting or shutting down',
    1002: 'the server found a protocol error',
    1006: 'connection lost',
    1007: 'the server could not read a message',
    1009: 'a message was too big for the server',
    1011: 'the server ran into an error',
    1012: 'the server is restarting',
    1013: 'the server is full, try again later',
    4000: 'reconnecting',
    4001: 'closed by this page',
    4002: 'the server stopped answering',
    4003: 'this page could not keep up with the messages',
    4004: 'too many messages sent too quickly',
    4005: 'not signed in in time',
    4011: 'refused by the server: sign-in failed',
    4012: 'kicked: you logged in elsewhere',
  };

  function closeWords(event) {
    var words = CLOSE_WORDS[event.code];
    if (words) return words;
    return event.reason ? 'closed by the server: ' + event.reason : 'connection closed';
  }

  // What the last close said, shown while reconnecting.
  var lastClose = '';

  connector.on('close', function (event) {
    $('latency').textContent = '–';
    $('room-panel').classList.add('offline');
    lastClose = closeWords(event);
    if (event.code === 4011 || event.code === 4012) {
      setStatus('gave-up', lastClose + ' (reload the page to connect again)');
      return;
    }
    setStatus('disconnected', 'disconnected: ' + lastClose);
    connector.reconnect();
  });

  connector.on('reconnect', function (info) {
    setStatus(
      'reconnecting',
      'reconnecting: attempt ' +
        info.repeat +
        ' in ' +
        (info.timeout / 1000).toFixed(1) +
        ' s' +
        (lastClose ? ' (' + lastClose + ')' : ''),
    );
  });

  connector.on('repeat-limit', function (limit) {
    setStatus('gave-up', 'gave up after ' + limit + ' attempts (reload the page to try again)');
  });

  // ----- the node's bus (e.g. Redis) ------------------------------------------
  //
  // A node that cannot reach its bus still serves this page, but messages
  // reach only the people on this node: /health says so, and so does the page.

  function busProblem(health) {
    var bus = health && health.bus;
    if (!bus || !Array.isArray(bus.nodes)) return '';
    var down = bus.nodes
      .filter(function (n) {
        return n && !n.healthy;
      })
      .map(function (n) {
        return String(n.name);
      });
    if (!bus.healthy) {
      return (
        'This node cannot reach its message bus' +
        (down.length ? ' (' + down.join(', ') + ')' : '') +
        ': messages reach only people on this node, and the online count leaves out the ' +
        'other nodes. The node keeps trying.'
      );
    }
    if (down.length) {
      return 'Bus node ' + down.join(', ') + ' is unreachable; messages go through the others.';
    }
    return '';
  }

  function checkHealth() {
    fetch('/health', { cache: 'no-store' })
      .then(function (res) {
        return res.json();
      })
      .then(function (health) {
        var text = busProblem(health);
        var el = $('bus-warning');
        // Only on a change, so that the alert is not repeated.
        if (el.textContent !== text) el.textContent = text;
        el.hidden = !text;
      })
      .catch(function () {
        // The node is down: the connection status says so.
      });
  }
  checkHealth();
  setInterval(checkHealth, option('health', 5000));

  connector.on('pong', function (ms) {
    $('latency').textContent = ms + ' ms';
  });

  connector.on('pong-timeout', function () {
    $('latency').textContent = 'no answer';
  });

  // ----- room -----------------------------------------------------------------

  function showPresence(p) {
    if (!p || !joined || p.room !== joined.room) return;
    $('online').textContent = String(p.count);
    $('online-names').textContent = (p.names || []).join(', ');
    if (p.nodes) $('nodes').textContent = String(p.nodes);
  }

  function join(name, room, again) {
    showError('join-error', '');
    connector.emit('join', { name: name, room: room }, function (err, res) {
      if (err) {
        showError('join-error', (again ? 'could not join again: ' : 'could not join: ') + err.error);
        return;
      }
      if (!res || !res.ok) {
        showError('join-error', (res && res.error) || 'could not join');
        return;
      }
      var changed = !joined || joined.room !== res.room;
      joined = { name: res.name, room: res.room };
      $('room-name').textContent = res.room;
      $('me').textContent = res.name;
      $('node').textContent = String(res.node);
      $('room-panel').hidden = false;
      if (changed) {
        showRecoveryWarning('');
        $('messages').textContent = '';
        addSystem({ text: 'you joined ' + res.room + ' on node ' + res.node });
      }
      showPresence(res.online);
      $('text').focus();
    });
  }

  $('join-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    join($('name').value, $('room').value, false);
  });

  $('leave').addEventListener('click', function () {
    connector.emit('leave', {}, function () {});
    joined = null;
    showRecoveryWarning('');
    $('room-panel').hidden = true;
  });

  // The room's members over the cluster, kept by the connector.
  connector.on('presence', function (r) {
    var names = r.members
      .map(function (m) {
        return m.info && typeof m.info.name === 'string' ? m.info.name : null;
      })
      .filter(function (n) {
        return n !== null;
      })
      .sort(function (a, b) {
        return a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0;
      });
    showPresence({ room: r.room, count: r.members.length, names: names.slice(0, 100) });
  });

  // ----- messages -------------------------------------------------------------

  function time(ts) {
    var d = new Date(typeof ts === 'number' ? ts : Date.now());
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function span(cls, text) {
    var el = document.createElement('span');
    el.className = cls;
    el.textContent = text;
    return el;
  }

  function append(li) {
    var list = $('messages');
    var atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    list.appendChild(li);
    while (list.children.length > MAX_SHOWN) list.removeChild(list.firstChild);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  // A message the page missed while disconnected, sent again after the
  // reconnection: marked with a visible word (not by colour alone).
  function markRecovered(li, meta) {
    if (!meta || !meta.recovered) return;
    li.classList.add('recovered');
    var label = span('recovered-label', 'recovered');
    label.title = 'sent while this page was disconnected';
    li.appendChild(label);
  }

  connector.on('chat-message', function (m, meta) {
    if (!m || !joined || m.room !== joined.room) return;
    var li = document.createElement('li');
    li.className = 'message';
    if (window.chat.me && m.from === window.chat.me) li.classList.add('mine');
    li.appendChild(span('time', time(m.ts)));
    li.appendChild(span('name', String(m.name) + ':'));
    li.appendChild(span('text', String(m.text)));
    li.appendChild(span('node', 'via ' + String(m.node)));
    markRecovered(li, meta);
    append(li);
  });

  connector.on('system', function (m, meta) {
    if (!m || !joined || m.room !== joined.room) return;
    addSystem(m, meta);
  });

  function addSystem(m, meta) {
    var li = document.createElement('li');
    li.className = 'system';
    li.appendChild(span('time', time(m.ts)));
    li.appendChild(span('text', String(m.text)));
    markRecovered(li, meta);
    append(li);
  }

  // ----- recovery after a reconnection -----------------------------------------

  var LOST_WORDS = {
    epoch_changed: 'the server restarted and lost the recent messages',
    too_old: 'this page was away longer than the server keeps messages',
    unavailable: 'the server could not read its message history',
  };

  function showRecoveryWarning(text) {
    var el = $('recovery-warning');
    // Only on a change, so that the alert is not repeated.
    if ($('recovery-text').textContent !== text) $('recovery-text').textContent = text;
    el.hidden = !text;
  }

  // Once the page joined its room again: how the messages it missed came back.
  connector.on('recovery', function (r) {
    if (!joined || r.room !== joined.room) return;
    if (r.status === 'incomplete') {
      showRecoveryWarning(
        'Some messages could not be recovered (' +
          (LOST_WORDS[r.reason] || 'unknown reason') +
          '). Reload the page to see the conversation.',
      );
    } else if (r.status === 'complete') {
      addSystem({
        text:
          'back online: ' +
          r.recovered +
          (r.recovered === 1 ? ' missed update' : ' missed updates') +
          ' recovered',
      });
    }
  });

  $('reload').addEventListener('click', function () {
    location.reload();
  });

  connector.on('welcome', function (info) {
    if (info) window.chat.me = info.id;
  });

  function updateCount() {
    var n = Array.from($('text').value.trim()).length;
    var el = $('count');
    el.textContent = n + ' / ' + MAX_TEXT;
    el.classList.toggle('over', n > MAX_TEXT);
  }

  function send() {
    var text = $('text').value;
    if (!text.trim()) return;
    showError('send-error', '');
    connector.emit('say', { text: text }, function (err, res) {
      if (err) {
        showError('send-error', 'not sent: ' + err.error);
        return;
      }
      if (!res || !res.ok) {
        showError('send-error', 'not sent: ' + ((res && res.error) || 'unknown error'));
        return;
      }
      $('text').value = '';
      updateCount();
    });
  }

  $('say-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    send();
  });
  // Input methods (Chinese, Japanese, Korean, ...) use Enter to commit the
  // text being composed: that Enter must not send. Browsers mark it with
  // isComposing, some (Safari) only with the legacy keyCode 229.
  var composing = false;
  $('text').addEventListener('compositionstart', function () {
    composing = true;
  });
  $('text').addEventListener('compositionend', function () {
    composing = false;
  });
  $('text').addEventListener('keydown', function (ev) {
    if (ev.key !== 'Enter' || ev.shiftKey) return;
    if (ev.isComposing || ev.keyCode === 229 || composing) return;
    ev.preventDefault();
    send();
  });
  $('text').addEventListener('input', updateCount);
})();
