/** A contender that cannot run here: its rows show — and the table says why. */
export class NotAvailable extends Error {
  constructor(why) {
    super(why);
    this.name = 'NotAvailable';
  }
}
