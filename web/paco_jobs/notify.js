// Browser notifications for a job's end: shown only while the tab is in the background and
// only when the user allowed them (the sidebar asks once, from a click: browsers refuse a
// permission prompt that no gesture started). The words are the toast's, which the Training
// Job node's status repeats (paco_core/jobs/announce.py).

/** The sentence for a job that ended (null while it runs), as paco_core/jobs/announce.py words it. */
export function endMessage(record, bestLora) {
  const name = record.name || record.id;
  if (record.status === "completed") {
    return `PaCo job completed: ${name}: ${record.total ?? record.step ?? ""} steps${bestLora ? `; best LoRA ${bestLora}` : ""}`;
  }
  if (record.status === "failed" || record.status === "interrupted") {
    const lines = String(record.error ?? "").split("\n").map((line) => line.trim()).filter(Boolean);
    const reason = lines.length ? lines[lines.length - 1].slice(0, 240) : "no reason recorded (see its log)";
    return `PaCo job ${record.status}: ${name}: ${reason}`;
  }
  if (record.status === "stopped") return `PaCo job stopped: ${name} stopped at step ${record.step ?? 0}; Resume continues it.`;
  return null;
}

export function notificationsSupported() {
  return typeof window !== "undefined" && "Notification" in window;
}

export function notificationPermission() {
  return notificationsSupported() ? Notification.permission : "unsupported";
}

/** Ask for permission (call from a click); resolves to the permission. */
export async function askPermission() {
  if (!notificationsSupported()) return "unsupported";
  if (Notification.permission !== "default") return Notification.permission;
  try {
    return await Notification.requestPermission();
  } catch {
    return Notification.permission;
  }
}

/** Show a notification when the page is hidden and the user allowed it; returns whether shown. */
export function notifyInBackground(message, { tag } = {}) {
  if (!message || !notificationsSupported() || Notification.permission !== "granted") return false;
  if (document.visibilityState === "visible") return false;
  const [title, ...rest] = message.split(": ");
  try {
    new Notification(title, { body: rest.join(": "), tag });
    return true;
  } catch {
    return false; // some browsers allow notifications only from a service worker
  }
}
