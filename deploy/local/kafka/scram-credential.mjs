// Prints a StorageTool `--add-scram` argument for one user, with the password already salted and
// hashed (PBKDF2, as SCRAM stores it), so the password itself never appears on a command line.
// Usage: node scram-credential.mjs <user> <password-file>
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [user, file] = process.argv.slice(2);
const password = readFileSync(file, 'utf8').trim();
const iterations = 4096;
const salt = randomBytes(24);
const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
process.stdout.write(`SCRAM-SHA-256=[name=${user},iterations=${iterations},salt="${salt.toString('base64')}",saltedpassword="${salted.toString('base64')}"]`);
