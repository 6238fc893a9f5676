// Ticket MATE admin pages: small enhancements over pages that work without JavaScript.
// Runs on the first page load and on every piece HTMX swaps in (htmx.onLoad).
(function () {
  "use strict";

  // -- times: the server writes UTC; show the browser's time zone, keep UTC on hover ------------
  var thisYear = new Date().getFullYear();
  var timeFormat = function (withYear) {
    return new Intl.DateTimeFormat(undefined, {
      year: withYear ? "numeric" : undefined, month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
    });
  };
  var sameYear = timeFormat(false);
  var otherYear = timeFormat(true);

  function localTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      el.textContent = (moment.getFullYear() === thisYear ? sameYear : otherYear).format(moment);
      el.setAttribute("data-local", "");
    });
  }

  // -- destructive forms: ask first; the server asks on a page of its own when this did not run --
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      return;
    }
    var field = form.querySelector("input[name=confirmed]");
    if (field) field.value = "1";
  }, true);

  // -- Copy buttons (shown only when copying can work) ---------------------------------------
  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (button.hasAttribute("data-ready")) return;
      button.setAttribute("data-ready", "");
      button.hidden = false;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy"));
        if (!target) return;
        var text = target.textContent.trim();
        var done = function () {
          var label = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done);
        } else {
          // Plain-HTTP hosts have no clipboard API: select the text and use the old command.
          var range = document.createRange();
          range.selectNodeContents(target);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          if (document.execCommand("copy")) done();
        }
      });
    });
  }

  // -- secret fields (a webhook URL being typed): masked, and Show/Hide for the person typing --
  function revealButtons(root) {
    root.querySelectorAll("button[data-reveal]:not([data-ready])").forEach(function (button) {
      var field = document.getElementById(button.getAttribute("data-reveal"));
      if (!field) return;
      button.setAttribute("data-ready", "");
      button.hidden = false;
      function show(shown) {
        field.type = shown ? "text" : "password";
        button.textContent = shown ? "Hide" : "Show";
        button.setAttribute("aria-label", (shown ? "Hide" : "Show") + " the URL");
      }
      button.addEventListener("click", function () {
        show(field.type === "password");
        field.focus();
      });
      // Masked again when the form is sent: the page that comes back, or the one the browser
      // restores on Back, must not show the URL in clear.
      if (field.form) field.form.addEventListener("submit", function () { show(false); });
    });
  }

  // -- multi-value inputs: values as chips; the form still posts "A, B" in the original field --
  function split(text) {
    return text.split(",").map(function (v) { return v.trim(); }).filter(Boolean);
  }

  function multiValue(root) {
    root.querySelectorAll("input[data-multi]:not([data-ready])").forEach(function (field) {
      field.setAttribute("data-ready", "");
      var values = split(field.value);
      var box = document.createElement("div");
      box.className = "multi";
      var chips = document.createElement("span");
      var entry = document.createElement("input");
      entry.type = "text";
      entry.autocomplete = "off";
      entry.placeholder = field.placeholder;
      if (field.getAttribute("list")) entry.setAttribute("list", field.getAttribute("list"));
      ["aria-invalid", "aria-describedby"].forEach(function (name) {
        if (field.hasAttribute(name)) entry.setAttribute(name, field.getAttribute(name));
      });
      // The label points at what people type into.
      entry.id = field.id;
      field.id = field.id + "-values";
      field.type = "hidden";
      field.removeAttribute("list");
      field.parentNode.insertBefore(box, field);
      box.appendChild(chips);
      box.appendChild(entry);

      function draw() {
        field.value = values.join(", ");
        chips.textContent = "";
        values.forEach(function (value, index) {
          var chip = document.createElement("span");
          chip.className = "chip";
          chip.textContent = value;
          var remove = document.createElement("button");
          remove.type = "button";
          remove.textContent = "×";
          remove.setAttribute("aria-label", "Remove " + value);
          remove.addEventListener("click", function () { values.splice(index, 1); draw(); });
          chip.appendChild(remove);
          chips.appendChild(chip);
        });
      }
      function take() {
        split(entry.value).forEach(function (value) {
          var known = values.some(function (v) { return v.toLowerCase() === value.toLowerCase(); });
          if (!known) values.push(value);
        });
        entry.value = "";
        draw();
      }
      entry.addEventListener("keydown", function (event) {
        if ((event.key === "Enter" || event.key === ",") && entry.value.trim()) {
          event.preventDefault();
          take();
        } else if (event.key === "Backspace" && !entry.value && values.length) {
          values.pop();
          draw();
        }
      });
      entry.addEventListener("change", function () { if (entry.value.includes(",")) take(); });
      // Whatever is still typed counts when the form is sent.
      field.form.addEventListener("submit", take);
      draw();
    });
  }

  // -- the Adaptive Card of a delivery, drawn by Microsoft's renderer as Teams would ------------
  var TEAMS_HOST_CONFIG = {
    fontFamily: "'Segoe UI', system-ui, -apple-system, sans-serif",
    spacing: { small: 4, default: 8, medium: 16, large: 20, extraLarge: 24, padding: 16 },
    separator: { lineThickness: 1, lineColor: "#E0E0E0" },
    fontSizes: { small: 12, default: 14, medium: 16, large: 20, extraLarge: 24 },
    fontWeights: { lighter: 300, default: 400, bolder: 600 },
    containerStyles: {
      default: {
        backgroundColor: "#FFFFFF",
        foregroundColors: {
          default: { default: "#242424", subtle: "#616161" },
          accent: { default: "#5B5FC7", subtle: "#7579EB" },
          good: { default: "#0E7A0B", subtle: "#107C10" },
          warning: { default: "#835C00", subtle: "#8A6200" },
          attention: { default: "#C4314B", subtle: "#D13438" },
        },
      },
      emphasis: {
        backgroundColor: "#F5F5F5",
        foregroundColors: { default: { default: "#242424", subtle: "#616161" } },
      },
    },
    actions: { maxActions: 6, buttonSpacing: 8, actionsOrientation: "horizontal", actionAlignment: "left" },
    factSet: {
      title: { weight: "bolder", wrap: true, maxWidth: 150 },
      value: { wrap: true },
      spacing: 8,
    },
  };

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // -- the Markdown subset Teams renders in TextBlocks: links, **bold**, _italic_ ------------
  // The card builder backslash-escapes every Markdown character in text from Jira, and Teams
  // shows an escaped character as itself. So the text is read character by character: an
  // escaped character is plain text and can never open or close a link or emphasis, which
  // patterns over the raw text cannot guarantee (they would take "\[a\](…)" for a link).
  // Everything else is HTML-escaped, so nothing from a Jira issue can become markup; links are
  // kept only for http(s) addresses.
  var PUNCTUATION = /[!-\/:-@\[-`{-~]/;  // ASCII punctuation: what a backslash can escape

  function tokens(text) {
    var list = [];
    for (var i = 0; i < text.length; i++) {
      var c = text.charAt(i);
      if (c === "\\" && i + 1 < text.length && PUNCTUATION.test(text.charAt(i + 1))) {
        list.push({ c: text.charAt(++i), plain: true });
      } else {
        list.push({ c: c === "\n" ? " " : c, plain: false });
      }
    }
    return list;
  }

  function isMark(list, i, c) {
    return i >= 0 && i < list.length && !list[i].plain && list[i].c === c;
  }

  // The unescaped "c" after `from` and before `to`, or -1.
  function findMark(list, from, to, c) {
    for (var i = from; i < to; i++) if (isMark(list, i, c)) return i;
    return -1;
  }

  // [text](http…) starting at the "[" at `open`: {close, end, url}, or null.
  function linkAt(list, open, to) {
    var depth = 0, close = -1;
    for (var i = open + 1; i < to && close < 0; i++) {
      if (isMark(list, i, "[")) depth++;
      else if (isMark(list, i, "]")) { if (depth === 0) close = i; else depth--; }
    }
    if (close <= open + 1 || !isMark(list, close + 1, "(")) return null;
    var url = "";
    for (var j = close + 2; j < to; j++) {
      if (isMark(list, j, ")")) {
        return /^https?:\/\/[^\s]+$/i.test(url) ? { close: close, end: j + 1, url: url } : null;
      }
      if (/\s/.test(list[j].c)) return null;
      url += list[j].c;
    }
    return null;
  }

  function inline(list, from, to, inLink) {
    var html = "";
    var i = from;
    while (i < to) {
      if (isMark(list, i, "[") && !inLink) {
        var link = linkAt(list, i, to);
        if (link) {
          html += '<a href="' + escapeHtml(link.url) + '" target="_blank" rel="noopener noreferrer">' +
            inline(list, i + 1, link.close, true) + "</a>";
          i = link.end;
          continue;
        }
      }
      if (isMark(list, i, "*") && isMark(list, i + 1, "*")) {
        var star = findMark(list, i + 3, to, "*");
        if (star > 0 && isMark(list, star + 1, "*")) {
          html += "<strong>" + inline(list, i + 2, star, inLink) + "</strong>";
          i = star + 2;
          continue;
        }
      }
      if (isMark(list, i, "_") && (i === from || /[\s(*]/.test(list[i - 1].c))) {
        var under = findMark(list, i + 2, to, "_");
        if (under > 0 && (under + 1 === to || /[\s).,!?*]/.test(list[under + 1].c))) {
          html += "<em>" + inline(list, i + 1, under, inLink) + "</em>";
          i = under + 1;
          continue;
        }
      }
      html += escapeHtml(list[i].c);
      i++;
    }
    return html;
  }

  function markdown(text) {
    // Paragraphs: a blank line; a single line break is a space, as in Teams.
    return text.split(/\n{2,}/).map(function (paragraph) {
      var list = tokens(paragraph);
      return inline(list, 0, list.length, false);
    }).join("<br><br>");
  }

  function adaptiveCards(root) {
    var AC = window.AdaptiveCards;
    root.querySelectorAll("[data-adaptive-card]:not([data-ready])").forEach(function (box) {
      if (!AC) return;
      box.setAttribute("data-ready", "");
      var source = document.getElementById(box.getAttribute("data-adaptive-card"));
      try {
        var payload = JSON.parse(source.textContent);
        AC.AdaptiveCard.onProcessMarkdown = function (text, result) {
          result.outputHtml = markdown(text);
          result.didProcess = true;
        };
        var card = new AC.AdaptiveCard();
        card.hostConfig = new AC.HostConfig(TEAMS_HOST_CONFIG);
        card.onExecuteAction = function (action) {
          var url = action.url || "";
          if (/^https?:\/\//i.test(url)) window.open(url, "_blank", "noopener");
        };
        card.parse(payload);
        var rendered = card.render();
        box.textContent = "";
        if (rendered) box.appendChild(rendered);
        box.setAttribute("data-rendered", "true");
      } catch (error) {
        box.textContent = "The card could not be drawn: " + error;
        box.setAttribute("data-rendered", "false");
      }
    });
  }

  function enhance(root) {
    localTimes(root);
    copyButtons(root);
    revealButtons(root);
    multiValue(root);
    adaptiveCards(root);
  }

  if (window.htmx) {
    window.htmx.onLoad(enhance);
  } else {
    document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  }
})();
