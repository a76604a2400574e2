import { addressOf, type Mailbox } from '../../shared/connectors/catalog/email.ts';

export interface Recipients {
  to: Mailbox[];
  cc: Mailbox[];
  bcc: Mailbox[];
}

/**
 * to, cc and bcc with each address once, where it first appears (compared case-insensitively, as
 * the suppression table and the unit ledger key addresses). SendGrid refuses a message naming an
 * address twice across them; over SMTP the headers would name it twice and each spelling be a
 * recipient of its own (nodemailer drops only exact repeats from the envelope).
 */
export function onceEach(r: Recipients): Recipients {
  const seen = new Set<string>();
  const firsts = (list: Mailbox[]) =>
    list.filter((m) => {
      const address = addressOf(m);
      if (seen.has(address)) return false;
      seen.add(address);
      return true;
    });
  return { to: firsts(r.to), cc: firsts(r.cc), bcc: firsts(r.bcc) };
}
