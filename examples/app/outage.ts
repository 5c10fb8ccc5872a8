/**
 * Takes a region of `npm start`'s Key Protect emulator down, or brings every region back, through the emulator's
 * admin API (`POST /__emulator/faults`, `DELETE /__emulator/faults`).
 *
 * npx tsx examples/app/outage.ts down [region=us-south] [refuse|reset|503]   ·   npx tsx examples/app/outage.ts up
 */
import { readFileSync } from 'node:fs';

const dev = JSON.parse(readFileSync('.lockstep/dev.json', 'utf8')) as { kpAdminUrl: string };
const [action, region = 'us-south', outage = 'refuse'] = process.argv.slice(2);
if (action === 'down') {
  const res = await fetch(`${dev.kpAdminUrl}/__emulator/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ region, faults: { outage } }),
  });
  console.log(res.ok ? `${region} is down (${outage})` : `failed: ${res.status} ${await res.text()}`);
} else if (action === 'up') {
  const res = await fetch(`${dev.kpAdminUrl}/__emulator/faults`, { method: 'DELETE' });
  console.log(res.ok ? 'every region is up again' : `failed: ${res.status}`);
} else {
  console.error('usage: npx tsx examples/app/outage.ts down [region] [refuse|reset|503] | up');
  process.exit(2);
}
